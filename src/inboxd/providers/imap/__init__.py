"""IMAP (including Gmail and Outlook): sessions, the bulk FETCH stream, XOAUTH2."""
