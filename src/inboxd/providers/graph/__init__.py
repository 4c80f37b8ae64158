"""The Microsoft Graph provider (Outlook, Microsoft 365)."""
