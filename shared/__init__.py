"""trainfarm's shared library: everything the CLI, the workers and beat have in common.

Never imports Celery: the code here is plain functions and classes, tested without a broker. The Celery
tasks in ``workers`` parse their payloads and call into this package.
"""

__version__ = "0.1.0"
