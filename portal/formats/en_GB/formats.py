# ISO 8601: see portal/formats/__init__.py. Only these names are Steward's; Django's en_GB gives the rest.
DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"  # to the second: log entries, lifecycle transitions
