"""Mail providers: one interface, implemented by IMAP, Maildir, mbox and an in-memory fake."""
