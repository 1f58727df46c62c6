/**
 * The closed vocabularies of a release (release/release.ts), apart so that the database schema (db/schema.ts) can
 * name them without importing anything else.
 *
 * @module
 */

/** What a release is for. */
export const RELEASE_ROLES = ["switcher", "edge", "cloud"] as const;
/** A release's role. */
export type ReleaseRole = (typeof RELEASE_ROLES)[number];

/** A release's lifecycle: candidate -> active -> retired, or candidate -> rejected; one active per role and hop. */
export const RELEASE_STATUSES = ["active", "candidate", "rejected", "retired"] as const;
/** A release's status. */
export type ReleaseStatus = (typeof RELEASE_STATUSES)[number];
