// The AWS SDK for JavaScript v3 with its default addressing (virtual-hosted: the bucket
// in the Host), against relay: create a bucket, put, get, list, and a presigned GET.
// Usage: node aws_sdk_js_v3.cjs MODULES_DIR ENDPOINT BUCKET; prints one JSON line.
const [modules, endpoint, bucket] = process.argv.slice(2);
const {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, ListObjectsV2Command,
} = require(`${modules}/node_modules/@aws-sdk/client-s3`);
const { getSignedUrl } = require(`${modules}/node_modules/@aws-sdk/s3-request-presigner`);

(async () => {
  const seen = [];
  const s3 = new S3Client({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
  // The Host each request went to, to show the style the SDK chose.
  s3.middlewareStack.add(
    (next) => async (args) => {
      seen.push(args.request.hostname);
      return next(args);
    },
    { step: "finalizeRequest" },
  );
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: "hello/wörld.txt", Body: "hello from js", ContentType: "text/plain",
  }));
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "hello/wörld.txt" }));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  const url = await getSignedUrl(
    s3, new GetObjectCommand({ Bucket: bucket, Key: "hello/wörld.txt" }), { expiresIn: 300 },
  );
  const presigned = await fetch(url);
  console.log(JSON.stringify({
    hosts: [...new Set(seen)],
    body: await got.Body.transformToString(),
    contentType: got.ContentType,
    keys: (listed.Contents || []).map((o) => o.Key),
    presignedUrl: url,
    presignedStatus: presigned.status,
    presignedBody: await presigned.text(),
  }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
