CREATE TABLE `decisions` (
	`id` text PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`client_id` text,
	`edge_location` text NOT NULL,
	`created_at` integer NOT NULL,
	`layout` text NOT NULL,
	`frames` integer NOT NULL,
	`joints` integer NOT NULL,
	`channels` integer NOT NULL,
	`fps` real NOT NULL,
	`route` text NOT NULL,
	`route_reason` text NOT NULL,
	`forced` integer NOT NULL,
	`offload_probability` real NOT NULL,
	`shadow` integer DEFAULT false NOT NULL,
	`edge_model_version` text NOT NULL,
	`edge_label` text NOT NULL,
	`edge_prob` real NOT NULL,
	`edge_probs` text NOT NULL,
	`embedding` blob NOT NULL,
	`features` blob NOT NULL,
	`switcher_version` text NOT NULL,
	`switcher_score` real NOT NULL,
	`switcher_threshold` real NOT NULL,
	`cloud_model_version` text,
	`cloud_label` text,
	`cloud_prob` real,
	`cloud_probs` text,
	`cloud_error` text,
	`label` text NOT NULL,
	`prob` real NOT NULL,
	`queue_ms` real NOT NULL,
	`edge_ms` real NOT NULL,
	`cloud_ms` real,
	`total_ms` real NOT NULL,
	`batch_id` text
);
--> statement-breakpoint
CREATE INDEX `decisions_created_at` ON `decisions` (`created_at`);--> statement-breakpoint
CREATE INDEX `decisions_route_created_at` ON `decisions` (`route`,`created_at`);--> statement-breakpoint
CREATE INDEX `decisions_switcher_version` ON `decisions` (`switcher_version`,`created_at`);--> statement-breakpoint
CREATE INDEX `decisions_edge_location` ON `decisions` (`edge_location`,`created_at`);--> statement-breakpoint
CREATE INDEX `decisions_client_id` ON `decisions` (`client_id`);--> statement-breakpoint
CREATE TABLE `dmd_pairs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`source` text NOT NULL,
	`source_ref` text NOT NULL,
	`dataset` text,
	`created_at` integer NOT NULL,
	`edge_model_version` text NOT NULL,
	`cloud_model_version` text NOT NULL,
	`edge_probs` text NOT NULL,
	`cloud_probs` text NOT NULL,
	`embedding` blob NOT NULL,
	`features` blob NOT NULL,
	`hard_label` integer NOT NULL,
	`soft_label` real NOT NULL,
	`propensity` real NOT NULL,
	`true_label` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `dmd_pairs_source_models` ON `dmd_pairs` (`source`,`source_ref`,`edge_model_version`,`cloud_model_version`);--> statement-breakpoint
CREATE INDEX `dmd_pairs_created_at` ON `dmd_pairs` (`created_at`);--> statement-breakpoint
CREATE TABLE `switcher_versions` (
	`version` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL,
	`status` text NOT NULL,
	`file` text NOT NULL,
	`sha256` text NOT NULL,
	`threshold` real NOT NULL,
	`features` text NOT NULL,
	`provenance` text NOT NULL,
	`metrics` text NOT NULL,
	`promoted_at` integer,
	`parent_version` text
);
