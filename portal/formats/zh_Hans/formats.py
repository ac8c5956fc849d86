# As Chinese readers write dates: see portal/formats/__init__.py. Django's zh_Hans gives the rest.
DATE_FORMAT = "Y年n月j日"
DATETIME_FORMAT = "Y年n月j日 H:i"
SHORT_DATETIME_FORMAT = "Y年n月j日 H:i:s"
