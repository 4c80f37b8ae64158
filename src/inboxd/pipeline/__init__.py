"""Pure processing steps over stored messages (triage, labels, newsletters, clean-up
proposals): they take messages and return decisions; only tasks act on them."""
