"""Steward's date formats per language (settings.FORMAT_MODULE_PATH), over Django's own.

English keeps ISO 8601 (2026-12-04 14:05): audit evidence is compared and sorted by people and machines
alike. Chinese writes dates as its readers do (2026年12月4日 14:05). Templates and the compliance PDF
name the formats (`|date:"DATETIME_FORMAT"`), never a pattern of their own; the audit log's exact
instants (with microseconds) stay ISO in every language.
"""
