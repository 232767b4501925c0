"""The training stream: plan, fetch, decode, order and batch the samples a query selects.

One module per stage, in the order a sample goes through them:

* ``plan``: sample references as numpy columns (``RefTable``) and the fetch plan (whole chunks or coalesced ranges);
* ``fetch``: reads a window's requests (chunk cache, pooled ``read_into`` or ``get_many``);
* ``decode``: the ``Decoder`` turning fetched bytes into batches, and ``SampleError``;
* ``order``: epoch order, shards and the resumable position (``StreamState``);
* ``engine``: the stages on threads joined by bounded queues;
* ``batches``: the public ``Stream`` / ``data_stream`` and ``read_batch`` (``find_data(...).arrays()``).

Beside them: ``cache`` (the chunk LRU), ``disk_cache`` (remote chunks kept on local disk, shared by
processes), ``mapped`` (local chunk files mapped once per stream), ``memo`` (sample references kept
between a process's streams), ``follow`` (the settled-``_seq`` watermark of the tail) and ``groups``
(the epoch bound every rank of a group agrees on).  Nothing here imports ``warehouse``.
"""
