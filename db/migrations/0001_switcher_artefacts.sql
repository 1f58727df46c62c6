ALTER TABLE `switcher_versions` ADD `artefact` blob;--> statement-breakpoint
ALTER TABLE `switcher_versions` ADD `spec` text;