"""Where media files are kept: MEDIA_STORAGE_URL (s3://...) made Django's STORAGES, local files by default."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
QUERY_OPTIONS = {"region", "endpoint", "addressing", "location"}


class BadStorageUrl(ImproperlyConfigured):
    """MEDIA_STORAGE_URL is not one we understand; the message says which part is wrong."""


def storages(url: str) -> dict:
    """Django's STORAGES for `url`:

    - empty: files under MEDIA_ROOT (the embedded default);
    - `s3://KEY:SECRET@HOST/BUCKET[/PREFIX]?region=...&endpoint=...&addressing=path`: an S3-compatible bucket
      through django-storages. HOST is the service's host (`s3.amazonaws.com` or `aws` for AWS itself, whose
      endpoint boto3 knows; `minio.internal:9000` is reached over https); `endpoint=` gives the full endpoint
      URL instead (e.g. `http://127.0.0.1:9000`). KEY and SECRET may be left out to use boto3's own
      credentials (environment, instance role); percent-encode a `/` or `@` in them.
    """
    url = (url or "").strip()
    if not url:
        return {
            # No location: it follows MEDIA_ROOT (and a test's change of it).
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": STATICFILES,
        }
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise BadStorageUrl(f"MEDIA_STORAGE_URL: the scheme must be s3://, not {parts.scheme or 'none'}.")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise BadStorageUrl("MEDIA_STORAGE_URL: name the bucket, as in s3://key:secret@host/bucket.")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = set(query) - QUERY_OPTIONS
    if unknown:
        raise BadStorageUrl(
            f"MEDIA_STORAGE_URL: unknown option {sorted(unknown)[0]!r} (known: {', '.join(sorted(QUERY_OPTIONS))})."
        )
    options = {
        "bucket_name": path[0],
        "location": "/".join(path[1:]) or query.get("location", ""),
        # Files are named by message ID: a second copy of the same message's file may replace the first.
        "file_overwrite": True,
        "default_acl": None,  # the bucket's own policy; files are private unless it says otherwise
        "querystring_auth": True,
    }
    if parts.username:
        options["access_key"] = unquote(parts.username)
        options["secret_key"] = unquote(parts.password or "")
    host = parts.hostname or ""
    endpoint = query.get("endpoint", "")
    if endpoint:
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise BadStorageUrl("MEDIA_STORAGE_URL: endpoint must be an http(s) URL.")
        options["endpoint_url"] = endpoint
    elif host and host not in ("aws", "s3.amazonaws.com"):
        options["endpoint_url"] = f"https://{host}" + (f":{parts.port}" if parts.port else "")
    if query.get("region"):
        options["region_name"] = query["region"]
    if query.get("addressing"):
        if query["addressing"] not in ("path", "virtual", "auto"):
            raise BadStorageUrl("MEDIA_STORAGE_URL: addressing must be path, virtual or auto.")
        options["addressing_style"] = query["addressing"]
    return {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
        "staticfiles": STATICFILES,
    }
