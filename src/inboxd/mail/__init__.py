"""Pure mail handling: message parsing, credentials at rest, the demo mailbox generator."""
