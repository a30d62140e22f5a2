"""Events and capture: the schema-v1 event, validation into events or rejections, the
adapters for public data sets, and enrichment at capture (device, country, referral, local time).
"""
