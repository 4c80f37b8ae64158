"""Pure mail handling: message parsing, mbox and Maildir reading, demo mailbox generation."""
