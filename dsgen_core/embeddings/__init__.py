"""The embedding side of the registry (seed 000): encoders, the Chroma store, the outbox sync manager, search.

The registry is the truth and Chroma follows it: registry writes append ``embedding_outbox`` rows
in their own transaction (``registry/ingest.py``) and never wait for Chroma; ``sync`` drains the
outbox and ``reconcile`` repairs whatever drifted, never the reverse.

- ``spec``: :class:`EncoderSpec`, what decides a vector, and the :class:`Encoder` protocol.
- ``encoders``: the default encoder (a trained dsgen model's backbone), DINOv2/CLIP from local
  weights files, any ONNX image encoder.
- ``versions``: embedding versions in the registry (create, get, backfill the outbox).
- ``store``: Chroma collections, embedded or a ``chroma run`` server.
- ``sync``: drain, reconcile, status.
- ``search``: similar objects and images, near-duplicate groups.
"""
