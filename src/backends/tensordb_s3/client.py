"""Build one thread-safe boto3 S3 client per store, from an :class:`~tensordb_s3.config.S3Config`.

Why per store: two stores in one process may use different accounts,
endpoints or profiles, so each gets its own ``boto3.session.Session`` (never
the process-wide default session) and its own connection pool sized for its
``get_many`` concurrency.  Importing this module imports boto3: the registry
imports it only when an ``s3://`` store is opened.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from .config import S3Config

USER_AGENT = "tensordb"


def build_client(cfg: S3Config) -> tuple[Any, tuple[str, ...]]:
    """A botocore S3 client for ``cfg`` and the credential values it resolved (for scrubbing).

    Retries use botocore's adaptive mode (client-side rate limiting on
    throttling plus backoff on 5xx and dropped connections); the pool holds at
    least ``max_workers`` connections so concurrent fetches never queue for one.
    """
    session = cfg.session if cfg.session is not None else boto3.session.Session(profile_name=cfg.profile)
    s3_settings: dict[str, Any] = {}
    style = cfg.effective_addressing_style()
    if style is not None:
        s3_settings["addressing_style"] = style
    config = Config(
        retries={"mode": cfg.retry_mode, "total_max_attempts": cfg.max_attempts},  # attempts, first included
        max_pool_connections=max(cfg.max_workers + 4, 10),
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        s3=s3_settings or None,
        request_checksum_calculation=cfg.checksum_calculation,
        user_agent_extra=USER_AGENT,
    )
    kwargs: dict[str, Any] = {"config": config}
    if cfg.endpoint_url is not None:
        kwargs["endpoint_url"] = cfg.endpoint_url
    if cfg.region is not None:
        kwargs["region_name"] = cfg.region
    if cfg.verify is not None:
        kwargs["verify"] = cfg.verify
    if cfg.has_explicit_credentials:
        kwargs.update(
            aws_access_key_id=cfg.access_key_id,
            aws_secret_access_key=cfg.secret_access_key,
            aws_session_token=cfg.session_token,
        )
    client = session.client("s3", **kwargs)
    if cfg.has_explicit_credentials:
        return client, cfg.secrets()
    return client, _resolved_secrets(session)  # the client resolved (and cached) them already


def _resolved_secrets(session: Any) -> tuple[str, ...]:
    """Credential values the chain found (env, profile...), so messages can be scrubbed of them too."""
    try:
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception:  # noqa: BLE001 - scrubbing is best effort; the real call reports the failure
        return ()
    if frozen is None:
        return ()
    return tuple(v for v in (frozen.access_key, frozen.secret_key, frozen.token) if v)
