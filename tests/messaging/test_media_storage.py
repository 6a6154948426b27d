"""Media on S3-compatible storage: MEDIA_STORAGE_URL read into STORAGES, files kept in the bucket, and
downloads streamed from it chunk by chunk (moto's in-process S3 stands in for the store)."""

import asyncio

import boto3
import pytest
from moto import mock_aws

from messaging.models import Device, DeviceStatus
from messaging.services import downloads
from tests.api.conftest import ApiClient
from tests.pages.conftest import make_chat, make_message
from waportal.media_storage import BadStorageUrl, storages

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2000  # ~500 KB: many chunks


def test_no_url_keeps_files_on_local_disk():
    assert storages("")["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


def test_an_s3_url_names_the_bucket_credentials_endpoint_and_region():
    options = storages(
        "s3://AKIA%2Fx:s%40cret@minio.internal:9000/media/wa?region=eu-central-1&addressing=path"
    )["default"]["OPTIONS"]
    assert options["bucket_name"] == "media" and options["location"] == "wa"
    assert options["access_key"] == "AKIA/x" and options["secret_key"] == "s@cret"
    assert options["endpoint_url"] == "https://minio.internal:9000"
    assert options["region_name"] == "eu-central-1" and options["addressing_style"] == "path"
    aws = storages("s3://aws/bucket?endpoint=http://127.0.0.1:9000")["default"]["OPTIONS"]
    assert (
        aws["endpoint_url"] == "http://127.0.0.1:9000" and "access_key" not in aws
    )  # boto3's own credentials
    assert "endpoint_url" not in storages("s3://k:s@s3.amazonaws.com/b")["default"]["OPTIONS"]


@pytest.mark.parametrize(
    "url, says",
    [
        ("https://host/bucket", "scheme"),
        ("s3://k:s@host", "bucket"),
        ("s3://k:s@host/b?regoin=x", "regoin"),
        ("s3://k:s@host/b?endpoint=ftp://x", "endpoint"),
        ("s3://k:s@host/b?addressing=sideways", "addressing"),
    ],
)
def test_a_wrong_url_is_refused_naming_what_is_wrong(url, says):
    with pytest.raises(BadStorageUrl, match=says):
        storages(url)


@pytest.fixture
def bucket(settings, monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="wa-media")
        settings.STORAGES = storages("s3://testing:testing@aws/wa-media/org-files?region=us-east-1")
        yield boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def device(org):
    return Device.objects.create(
        organization=org, name="Phone", jid="905550000000@s.whatsapp.net", status=DeviceStatus.CONNECTED
    )


def stored_picture(device):
    message = make_message(make_chat(device), text="", kind="image", media_filename="cat.png")
    downloads.store_media(message, PNG)
    message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_media_is_kept_in_the_bucket_and_downloaded_from_it_without_copying_it_whole(
    bucket, device, api_key, monkeypatch
):
    message = stored_picture(device)
    kept = bucket.get_object(Bucket="wa-media", Key=f"org-files/{message.media.name}")["Body"].read()
    assert kept == PNG  # in the bucket, under the prefix, not on local disk

    # django-storages' S3File would download the object whole before the first byte goes out
    def whole_copy(self):
        raise AssertionError("the download copied the whole object first")

    monkeypatch.setattr("storages.backends.s3.S3File._get_file", whole_copy)
    response = ApiClient(api_key, device=device).get(f"/message/{message.wa_id}/download")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png" and response["Content-Length"] == str(len(PNG))
    assert b"".join(response.streaming_content) == PNG


@pytest.mark.django_db
def test_under_asgi_a_download_is_sent_chunk_by_chunk(bucket, device):
    """Django reads a sync file iterator whole before an ASGI server sends it; ours reads as it sends."""
    message = stored_picture(device)
    response = downloads.download(device, message)
    response.block_size = 64 * 1024  # what Django's ASGI handler sets (its chunk size)
    reads = []
    stream = response.file_to_stream
    original = stream.read
    stream.read = lambda size=-1: reads.append(size) or original(size)

    async def consume():
        chunks, reads_before = [], []
        async for chunk in response:
            reads_before.append(len(reads))  # how much was read from the store when this chunk went out
            chunks.append(chunk)
        return chunks, reads_before

    chunks, reads_before = asyncio.run(consume())
    response.close()
    assert b"".join(chunks) == PNG
    assert len(chunks) > 5 and max(len(c) for c in chunks) <= 64 * 1024
    assert all(0 < size <= 64 * 1024 for size in reads)  # never "read it all"
    assert reads_before[0] <= 2  # the first chunk left before the rest was read
