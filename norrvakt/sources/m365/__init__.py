"""Microsoft 365 and Entra ID, pulled: the Office 365 Management Activity API and Microsoft
Graph, one connector per municipality's Microsoft tenant (norrvakt/sources/m365/connector.py)."""
