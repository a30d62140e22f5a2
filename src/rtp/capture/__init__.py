"""Events and capture: the schema-v1 event, validation into events or rejections, the
adapters for public data sets, and enrichment at capture (device, country, referral, local time).

- :mod:`rtp.capture.events`: :class:`~rtp.capture.events.Event`, the schema-v1 validation
  (:func:`~rtp.capture.events.from_dict`, :func:`~rtp.capture.events.parse_json`) and
  :class:`~rtp.capture.events.Rejection` with its stable reason codes
  (:data:`~rtp.capture.events.REASONS`, ``unsupported_version`` and ``internal_error``
  included). Any JSON value in any field gives an event or a rejection, never an exception; a
  rejection carries the record's ``user`` when it could be read and never an IP address.
- :mod:`rtp.capture.adapters`: one parser per public format, and
  :func:`~rtp.capture.adapters.safe_parse`, the safety net the sources put around them.
- :mod:`rtp.capture.enrich`: :class:`~rtp.capture.enrich.Enricher` (device, browser, OS,
  country from the IP or the producer's ``context.country``, referral class, local time).
"""
