"""The S3-compatible `Storage` backend (AWS, MinIO, Garage, moto), via aiobotocore.

One client per node, opened on first use and closed by `close()`. Large
files go up in parts so memory stays flat; reads stream. `presigned_url()`
lets streaming redirect listeners to the bucket instead of proxying bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .storage import (
    CHUNK,
    MULTIPART_THRESHOLD,
    PART_SIZE,
    StoredObject,
    check_key,
    check_prefix,
)

if TYPE_CHECKING:
    from node.config import Settings


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        endpoint: str = "",
        region: str = "us-east-1",
        access_key: str = "",
        secret_key: str = "",
    ) -> None:
        if not bucket:
            raise ValueError("media.s3_bucket is required when media.storage is s3")
        self.bucket = bucket
        self._endpoint = endpoint or None
        self._region = region or "us-east-1"
        self._access_key = access_key or None
        self._secret_key = secret_key or None
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        m = settings.media
        return cls(
            bucket=m.s3_bucket,
            endpoint=m.s3_endpoint,
            region=m.s3_region,
            access_key=m.s3_access_key,
            secret_key=m.s3_secret_key,
        )

    async def _s3(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                stack = contextlib.AsyncExitStack()
                client = await stack.enter_async_context(
                    get_session().create_client(
                        "s3",
                        endpoint_url=self._endpoint,
                        region_name=self._region,
                        aws_access_key_id=self._access_key,
                        aws_secret_access_key=self._secret_key,
                        config=AioConfig(
                            s3={"addressing_style": "path"},
                            retries={"max_attempts": 3, "mode": "standard"},
                            max_pool_connections=50,
                        ),
                    )
                )
                try:
                    await client.head_bucket(Bucket=self.bucket)
                except Exception as e:
                    if _status(e) != 404:
                        await stack.aclose()
                        raise
                    # A fresh bucket for a fresh node (MinIO, Garage, tests).
                    await client.create_bucket(Bucket=self.bucket)
                self._stack, self._client = stack, client
        return self._client

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        check_key(key)
        s3 = await self._s3()
        size = await asyncio.to_thread(os.path.getsize, path)
        if size <= MULTIPART_THRESHOLD:
            data = await asyncio.to_thread(Path(path).read_bytes)
            await s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        else:
            await self._multipart(s3, key, Path(path), content_type)
        obj = await self.stat(key)
        assert obj is not None
        return obj

    async def _multipart(self, s3: Any, key: str, path: Path, content_type: str) -> None:
        up = await s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        upload_id = up["UploadId"]
        parts = []
        f = await asyncio.to_thread(open, path, "rb")
        try:
            number = 1
            while block := await asyncio.to_thread(f.read, PART_SIZE):
                r = await s3.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=block,
                )
                parts.append({"ETag": r["ETag"], "PartNumber": number})
                number += 1
            f.close()
            await s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            f.close()
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        check_key(key)
        s3 = await self._s3()
        await s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), ContentType=content_type)
        obj = await self.stat(key)
        assert obj is not None
        return obj

    async def get_bytes(self, key: str) -> bytes:
        return b"".join([block async for block in self.iter_range(key)])

    async def fetch_to(self, key: str, path: Path) -> None:
        tmp = Path(path).with_name(f".{Path(path).name}.{secrets.token_hex(6)}.tmp")
        f = await asyncio.to_thread(open, tmp, "wb")
        try:
            with f:
                async for block in self.iter_range(key):
                    await asyncio.to_thread(f.write, block)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    async def iter_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        check_key(key)
        s3 = await self._s3()
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            kw["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            resp = await s3.get_object(**kw)
        except Exception as e:
            if _status(e) == 404:
                raise KeyError(key) from None
            raise
        async with resp["Body"] as body:
            while block := await body.read(CHUNK):
                yield block

    async def stat(self, key: str) -> StoredObject | None:
        check_key(key)
        s3 = await self._s3()
        try:
            h = await s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as e:
            if _status(e) == 404:
                return None
            raise
        return StoredObject(
            key=key,
            size=int(h["ContentLength"]),
            etag=str(h.get("ETag", "")).strip('"'),
            modified=h["LastModified"].astimezone(UTC),
            content_type=h.get("ContentType") or "application/octet-stream",
        )

    async def delete(self, key: str) -> None:
        check_key(key)
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=key)

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        kw: dict[str, Any] = {"Bucket": self.bucket}
        if prefix:
            kw["Prefix"] = prefix
        async for page in paginator.paginate(**kw):
            for item in page.get("Contents", []):
                yield item

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        s3 = await self._s3()
        keys = [item["Key"] async for item in self._list(prefix)]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def local_path(self, key: str) -> Path | None:
        return None

    async def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        check_key(key)
        s3 = await self._s3()
        return await s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=int(expires_seconds),
        )

    async def usage(self) -> tuple[int, int]:
        n = total = 0
        async for item in self._list(""):
            n += 1
            total += int(item.get("Size", 0))
        return n, total

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


def _status(e: BaseException) -> int | None:
    """HTTP status of a botocore ClientError (404 for NoSuchKey/NoSuchBucket)."""
    response = getattr(e, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
        return 404
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
