ALTER TABLE `switcher_versions` ADD `role` text DEFAULT 'switcher' NOT NULL;--> statement-breakpoint
ALTER TABLE `switcher_versions` ADD `hop` integer DEFAULT 0 NOT NULL;