CREATE TABLE `decision_tiers` (
	`decision_id` text NOT NULL,
	`tier` integer NOT NULL,
	`tier_name` text NOT NULL,
	`created_at` integer NOT NULL,
	`model_version` text,
	`label` text,
	`prob` real,
	`probs` text,
	`has_probabilities` integer,
	`error` text,
	`error_reason` text,
	`ms` real,
	`cost_ms` real,
	`price` real,
	`propensity` real NOT NULL,
	`shadow` integer NOT NULL,
	`answered` integer NOT NULL,
	`switcher_version` text,
	`switcher_score` real,
	`switcher_threshold` real,
	`next` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `decision_tiers_decision_tier` ON `decision_tiers` (`decision_id`,`tier`);--> statement-breakpoint
CREATE INDEX `decision_tiers_created_at` ON `decision_tiers` (`created_at`,`tier`);