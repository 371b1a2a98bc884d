// `blksnap serve` of backups in S3 repositories (the real Ceph RGW started by
// tests/s3/server.sh), plain and encrypted: the NBD cases every kind of
// repository passes (tests/host/_nbd_cases.ts), against nbdinfo, nbdcopy,
// qemu-img and qemu-io.

import { nbdCases } from "../host/_nbd_cases.ts";
import { ignore } from "./_server.ts";

let n = 0;
const bucket = (): string => `nbd-${Date.now().toString(36)}-${n++}`;

nbdCases({
  label: "s3, plain",
  encrypted: false,
  ignore,
  location: () => Promise.resolve(`s3://${bucket()}/hosts/vm1`),
});
nbdCases({
  label: "s3, encrypted",
  encrypted: true,
  ignore,
  location: () => Promise.resolve(`s3://${bucket()}/hosts/vm1`),
});
