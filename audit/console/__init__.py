"""The auditor's console: the HTTP face (REST API and pages) of the audit log.

It lives beside `audit.log` rather than in it, because it needs the portal's accounts to know
who may read what, and `audit.log` imports nothing of ours.
"""
