ALTER TABLE `decisions` ADD `input_kind` text;--> statement-breakpoint
ALTER TABLE `decisions` ADD `decode_ms` real;--> statement-breakpoint
ALTER TABLE `decisions` ADD `pose_ms` real;--> statement-breakpoint
ALTER TABLE `decisions` ADD `pose_quality` real;