/**
 * Small types the flows share.
 *
 * @module
 */

/** Progress of a running flow, for progress bars. */
export interface Progress {
  /** Bytes processed so far. */
  bytesDone: number;
  /** Bytes to process in total. */
  bytesTotal: number;
}

/** A backup whose manifest or index cannot be used. */
export interface BadBackup {
  /** Backup id. */
  id: string;
  /** The file at fault. */
  path: string;
  /** The error message. */
  error: string;
}
