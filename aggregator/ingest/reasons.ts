/**
 * Why the aggregator refuses an agent stream or message: the `reason` label of
 * verdict_ingest_rejected_total, each exported at 0 from the first scrape. A
 * fixed set, so the label stays bounded and the README can list every value.
 */
export const INGEST_REJECT_REASONS = [
  /** No credentials, or credentials the aggregator does not accept. */
  'unauthenticated',
  /** Not the conversation the .proto describes: no Hello first, Hello twice, an empty or newer message. */
  'protocol',
  /** Decoded, but a field fails validation (an unknown enum value, a bound passed). */
  'invalid',
  /** Not decodable as an AgentMessage. */
  'malformed',
  /** Larger than --max-message-bytes. */
  'oversized',
  /** A seq not above what the stream already settled, and never stored. */
  'out_of_order',
  /** The store kept refusing this message while it answered otherwise. */
  'unstorable',
  /** Credentials bound to another node. */
  'node_mismatch',
] as const;

export type IngestRejectReason = (typeof INGEST_REJECT_REASONS)[number];
