"""The model publisher: its own program inside the service image (``python -m service.sync``).

It copies model versions from S3 (or a folder) into the service's Triton-layout repository on EFS,
verifying and atomically renaming each one; the service only ever reads what it published.
Modules: ``cli`` (arguments, exit codes), ``sources`` (S3 / local listing), ``checksum``,
``publish`` (the protocol), ``repo`` (locking, retention, fsync), ``ui`` (progress and logs),
``errors`` (exit-code carrying exceptions).
"""
