"""Content-addressed results: keys, the store protocol, and the disk and Redis stores.

The layers, one module each:

* :mod:`~face3d_core.cache.keys`: what an entry is called (:func:`make_key`,
  :func:`params_digest`, :func:`combine_hashes`, :func:`is_sha256_hex`, :data:`CACHE_VERSION`);
* :mod:`~face3d_core.cache.store`: what a store is (:class:`ResultStore`), the checked entry
  envelope and the one compute-once implementation (:func:`compute_once`, :class:`KeyLocks`);
* :mod:`~face3d_core.cache.diskdb`: :class:`DiskDB`, every diskcache database used with bounded
  waits, served read-only on a read-only folder, its damaged index repaired at start;
* :mod:`~face3d_core.cache.disk`: :class:`ResultCache` on diskcache (one machine, the default;
  pins keep entries in use from eviction);
* :mod:`~face3d_core.cache.redis`: ``RedisResultCache`` (a deployment; import it from there,
  so the ``redis`` client is only needed in scale-out mode).

Example:
    >>> import tempfile
    >>> cache = ResultCache(tempfile.mkdtemp())
    >>> key = make_key("demo", "0" * 64, params={"sigma": 1.5})
    >>> cache.get_or_compute(key, lambda: 42)
    42
"""

from face3d_core.cache.disk import DEFAULT_SIZE_MB, CacheFullError, ResultCache, default_results_dir, get_cache
from face3d_core.cache.diskdb import CacheBusyError, CacheNotWritableError, DiskDB, OnDamage
from face3d_core.cache.keys import (
    CACHE_VERSION,
    UPLOAD_VERSION,
    combine_hashes,
    content_hash_of,
    is_sha256_hex,
    make_key,
    params_digest,
)
from face3d_core.cache.store import (
    MISSING,
    KeyLocks,
    ResultStore,
    compute_once,
    decode_entry,
    encode_entry,
)

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_SIZE_MB",
    "MISSING",
    "UPLOAD_VERSION",
    "CacheBusyError",
    "CacheFullError",
    "CacheNotWritableError",
    "DiskDB",
    "KeyLocks",
    "OnDamage",
    "ResultCache",
    "ResultStore",
    "combine_hashes",
    "compute_once",
    "content_hash_of",
    "decode_entry",
    "default_results_dir",
    "encode_entry",
    "get_cache",
    "is_sha256_hex",
    "make_key",
    "params_digest",
]
