"""The embedded iSCSI target (RFC 7143): ``pdu`` -> ``framing`` -> ``keys``/``chap``/``login`` ->
``connection`` (sans-IO) -> ``server`` (asyncio, the only module with sockets)."""
