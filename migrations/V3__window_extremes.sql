-- The lowest and highest live sample of each window (SPEC §5), so a chart of a long range
-- shows its peaks and not only the means. Nullable: rows written before (by this service
-- or the original one) have no extremes, and stay valid as they are.
ALTER TABLE metrics_cpu ADD COLUMN IF NOT EXISTS value_min double precision;
ALTER TABLE metrics_cpu ADD COLUMN IF NOT EXISTS value_max double precision;
ALTER TABLE metrics_ram ADD COLUMN IF NOT EXISTS value_min double precision;
ALTER TABLE metrics_ram ADD COLUMN IF NOT EXISTS value_max double precision;
ALTER TABLE metrics_gpu ADD COLUMN IF NOT EXISTS value_min double precision;
ALTER TABLE metrics_gpu ADD COLUMN IF NOT EXISTS value_max double precision;
ALTER TABLE metrics_temperature ADD COLUMN IF NOT EXISTS value_min double precision;
ALTER TABLE metrics_temperature ADD COLUMN IF NOT EXISTS value_max double precision;
