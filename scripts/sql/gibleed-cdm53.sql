-- OMOP CDM 5.3 DDL (PostgreSQL) for the tables of Eunomia GiBleed that Qiao ingests, as loaded by
-- scripts/pg-load-gibleed.sh into the schema on the search_path. Types follow the OHDSI CDM 5.3.1
-- DDL (NUMERIC for measured values, DATE / TIMESTAMP, VARCHAR with its lengths), except that
-- identifiers are BIGINT; concept ids stay INTEGER. Columns are exactly those of GiBleed's CSV files
-- (the loader checks), so the PostgreSQL and CSV ingests see the same columns.

CREATE TABLE person (
  person_id                   BIGINT       NOT NULL,
  gender_concept_id           INTEGER      NOT NULL,
  year_of_birth               INTEGER      NOT NULL,
  month_of_birth              INTEGER      NULL,
  day_of_birth                INTEGER      NULL,
  birth_datetime              TIMESTAMP    NULL,
  race_concept_id             INTEGER      NOT NULL,
  ethnicity_concept_id        INTEGER      NOT NULL,
  location_id                 BIGINT       NULL,
  provider_id                 BIGINT       NULL,
  care_site_id                BIGINT       NULL,
  person_source_value         VARCHAR(50)  NULL,
  gender_source_value         VARCHAR(50)  NULL,
  gender_source_concept_id    INTEGER      NULL,
  race_source_value           VARCHAR(50)  NULL,
  race_source_concept_id      INTEGER      NULL,
  ethnicity_source_value      VARCHAR(50)  NULL,
  ethnicity_source_concept_id INTEGER      NULL
);

CREATE TABLE observation_period (
  observation_period_id          BIGINT  NOT NULL,
  person_id                      BIGINT  NOT NULL,
  observation_period_start_date  DATE    NOT NULL,
  observation_period_end_date    DATE    NOT NULL,
  period_type_concept_id         INTEGER NOT NULL
);

CREATE TABLE visit_occurrence (
  visit_occurrence_id           BIGINT      NOT NULL,
  person_id                     BIGINT      NOT NULL,
  visit_concept_id              INTEGER     NOT NULL,
  visit_start_date              DATE        NOT NULL,
  visit_start_datetime          TIMESTAMP   NULL,
  visit_end_date                DATE        NOT NULL,
  visit_end_datetime            TIMESTAMP   NULL,
  visit_type_concept_id         INTEGER     NOT NULL,
  provider_id                   BIGINT      NULL,
  care_site_id                  BIGINT      NULL,
  visit_source_value            VARCHAR(50) NULL,
  visit_source_concept_id       INTEGER     NULL,
  admitting_source_concept_id   INTEGER     NULL,
  admitting_source_value        VARCHAR(50) NULL,
  discharge_to_concept_id       INTEGER     NULL,
  discharge_to_source_value     VARCHAR(50) NULL,
  preceding_visit_occurrence_id BIGINT      NULL
);

CREATE TABLE visit_detail (
  visit_detail_id                BIGINT      NOT NULL,
  person_id                      BIGINT      NOT NULL,
  visit_detail_concept_id        INTEGER     NOT NULL,
  visit_detail_start_date        DATE        NOT NULL,
  visit_detail_start_datetime    TIMESTAMP   NULL,
  visit_detail_end_date          DATE        NOT NULL,
  visit_detail_end_datetime      TIMESTAMP   NULL,
  visit_detail_type_concept_id   INTEGER     NOT NULL,
  provider_id                    BIGINT      NULL,
  care_site_id                   BIGINT      NULL,
  admitting_source_concept_id    INTEGER     NULL,
  discharge_to_concept_id        INTEGER     NULL,
  preceding_visit_detail_id      BIGINT      NULL,
  visit_detail_source_value      VARCHAR(50) NULL,
  visit_detail_source_concept_id INTEGER     NULL,
  admitting_source_value         VARCHAR(50) NULL,
  discharge_to_source_value      VARCHAR(50) NULL,
  visit_detail_parent_id         BIGINT      NULL,
  visit_occurrence_id            BIGINT      NOT NULL
);

CREATE TABLE condition_occurrence (
  condition_occurrence_id       BIGINT      NOT NULL,
  person_id                     BIGINT      NOT NULL,
  condition_concept_id          INTEGER     NOT NULL,
  condition_start_date          DATE        NOT NULL,
  condition_start_datetime      TIMESTAMP   NULL,
  condition_end_date            DATE        NULL,
  condition_end_datetime        TIMESTAMP   NULL,
  condition_type_concept_id     INTEGER     NOT NULL,
  stop_reason                   VARCHAR(20) NULL,
  provider_id                   BIGINT      NULL,
  visit_occurrence_id           BIGINT      NULL,
  visit_detail_id               BIGINT      NULL,
  condition_source_value        VARCHAR(50) NULL,
  condition_source_concept_id   INTEGER     NULL,
  condition_status_source_value VARCHAR(50) NULL,
  condition_status_concept_id   INTEGER     NULL
);

CREATE TABLE drug_exposure (
  drug_exposure_id             BIGINT      NOT NULL,
  person_id                    BIGINT      NOT NULL,
  drug_concept_id              INTEGER     NOT NULL,
  drug_exposure_start_date     DATE        NOT NULL,
  drug_exposure_start_datetime TIMESTAMP   NULL,
  drug_exposure_end_date       DATE        NOT NULL,
  drug_exposure_end_datetime   TIMESTAMP   NULL,
  verbatim_end_date            DATE        NULL,
  drug_type_concept_id         INTEGER     NOT NULL,
  stop_reason                  VARCHAR(20) NULL,
  refills                      INTEGER     NULL,
  quantity                     NUMERIC     NULL,
  days_supply                  INTEGER     NULL,
  sig                          TEXT        NULL,
  route_concept_id             INTEGER     NULL,
  lot_number                   VARCHAR(50) NULL,
  provider_id                  BIGINT      NULL,
  visit_occurrence_id          BIGINT      NULL,
  visit_detail_id              BIGINT      NULL,
  drug_source_value            VARCHAR(50) NULL,
  drug_source_concept_id       INTEGER     NULL,
  route_source_value           VARCHAR(50) NULL,
  dose_unit_source_value       VARCHAR(50) NULL
);

CREATE TABLE procedure_occurrence (
  procedure_occurrence_id     BIGINT      NOT NULL,
  person_id                   BIGINT      NOT NULL,
  procedure_concept_id        INTEGER     NOT NULL,
  procedure_date              DATE        NOT NULL,
  procedure_datetime          TIMESTAMP   NULL,
  procedure_type_concept_id   INTEGER     NOT NULL,
  modifier_concept_id         INTEGER     NULL,
  quantity                    INTEGER     NULL,
  provider_id                 BIGINT      NULL,
  visit_occurrence_id         BIGINT      NULL,
  visit_detail_id             BIGINT      NULL,
  procedure_source_value      VARCHAR(50) NULL,
  procedure_source_concept_id INTEGER     NULL,
  modifier_source_value       VARCHAR(50) NULL
);

CREATE TABLE device_exposure (
  device_exposure_id             BIGINT       NOT NULL,
  person_id                      BIGINT       NOT NULL,
  device_concept_id              INTEGER      NOT NULL,
  device_exposure_start_date     DATE         NOT NULL,
  device_exposure_start_datetime TIMESTAMP    NULL,
  device_exposure_end_date       DATE         NULL,
  device_exposure_end_datetime   TIMESTAMP    NULL,
  device_type_concept_id         INTEGER      NOT NULL,
  unique_device_id               VARCHAR(50)  NULL,
  quantity                       INTEGER      NULL,
  provider_id                    BIGINT       NULL,
  visit_occurrence_id            BIGINT       NULL,
  visit_detail_id                BIGINT       NULL,
  device_source_value            VARCHAR(100) NULL,
  device_source_concept_id       INTEGER      NULL
);

CREATE TABLE measurement (
  measurement_id                BIGINT      NOT NULL,
  person_id                     BIGINT      NOT NULL,
  measurement_concept_id        INTEGER     NOT NULL,
  measurement_date              DATE        NOT NULL,
  measurement_datetime          TIMESTAMP   NULL,
  measurement_time              VARCHAR(10) NULL,
  measurement_type_concept_id   INTEGER     NOT NULL,
  operator_concept_id           INTEGER     NULL,
  value_as_number               NUMERIC     NULL,
  value_as_concept_id           INTEGER     NULL,
  unit_concept_id               INTEGER     NULL,
  range_low                     NUMERIC     NULL,
  range_high                    NUMERIC     NULL,
  provider_id                   BIGINT      NULL,
  visit_occurrence_id           BIGINT      NULL,
  visit_detail_id               BIGINT      NULL,
  measurement_source_value      VARCHAR(50) NULL,
  measurement_source_concept_id INTEGER     NULL,
  unit_source_value             VARCHAR(50) NULL,
  value_source_value            VARCHAR(50) NULL
);

CREATE TABLE observation (
  observation_id                BIGINT      NOT NULL,
  person_id                     BIGINT      NOT NULL,
  observation_concept_id        INTEGER     NOT NULL,
  observation_date              DATE        NOT NULL,
  observation_datetime          TIMESTAMP   NULL,
  observation_type_concept_id   INTEGER     NOT NULL,
  value_as_number               NUMERIC     NULL,
  value_as_string               VARCHAR(60) NULL,
  value_as_concept_id           INTEGER     NULL,
  qualifier_concept_id          INTEGER     NULL,
  unit_concept_id               INTEGER     NULL,
  provider_id                   BIGINT      NULL,
  visit_occurrence_id           BIGINT      NULL,
  visit_detail_id               BIGINT      NULL,
  observation_source_value      VARCHAR(50) NULL,
  observation_source_concept_id INTEGER     NULL,
  unit_source_value             VARCHAR(50) NULL,
  qualifier_source_value        VARCHAR(50) NULL
);

CREATE TABLE death (
  person_id               BIGINT      NOT NULL,
  death_date              DATE        NOT NULL,
  death_datetime          TIMESTAMP   NULL,
  death_type_concept_id   INTEGER     NOT NULL,
  cause_concept_id        INTEGER     NULL,
  cause_source_value      VARCHAR(50) NULL,
  cause_source_concept_id INTEGER     NULL
);

CREATE TABLE specimen (
  specimen_id                 BIGINT      NOT NULL,
  person_id                   BIGINT      NOT NULL,
  specimen_concept_id         INTEGER     NOT NULL,
  specimen_type_concept_id    INTEGER     NOT NULL,
  specimen_date               DATE        NOT NULL,
  specimen_datetime           TIMESTAMP   NULL,
  quantity                    NUMERIC     NULL,
  unit_concept_id             INTEGER     NULL,
  anatomic_site_concept_id    INTEGER     NULL,
  disease_status_concept_id   INTEGER     NULL,
  specimen_source_id          VARCHAR(50) NULL,
  specimen_source_value       VARCHAR(50) NULL,
  unit_source_value           VARCHAR(50) NULL,
  anatomic_site_source_value  VARCHAR(50) NULL,
  disease_status_source_value VARCHAR(50) NULL
);

CREATE TABLE condition_era (
  condition_era_id           BIGINT  NOT NULL,
  person_id                  BIGINT  NOT NULL,
  condition_concept_id       INTEGER NOT NULL,
  condition_era_start_date   DATE    NOT NULL,
  condition_era_end_date     DATE    NOT NULL,
  condition_occurrence_count INTEGER NULL
);

CREATE TABLE drug_era (
  drug_era_id         BIGINT  NOT NULL,
  person_id           BIGINT  NOT NULL,
  drug_concept_id     INTEGER NOT NULL,
  drug_era_start_date DATE    NOT NULL,
  drug_era_end_date   DATE    NOT NULL,
  drug_exposure_count INTEGER NULL,
  gap_days            INTEGER NULL
);

CREATE TABLE dose_era (
  dose_era_id         BIGINT  NOT NULL,
  person_id           BIGINT  NOT NULL,
  drug_concept_id     INTEGER NOT NULL,
  unit_concept_id     INTEGER NOT NULL,
  dose_value          NUMERIC NOT NULL,
  dose_era_start_date DATE    NOT NULL,
  dose_era_end_date   DATE    NOT NULL
);

CREATE TABLE payer_plan_period (
  payer_plan_period_id          BIGINT      NOT NULL,
  person_id                     BIGINT      NOT NULL,
  payer_plan_period_start_date  DATE        NOT NULL,
  payer_plan_period_end_date    DATE        NOT NULL,
  payer_concept_id              INTEGER     NULL,
  payer_source_value            VARCHAR(50) NULL,
  payer_source_concept_id       INTEGER     NULL,
  plan_concept_id               INTEGER     NULL,
  plan_source_value             VARCHAR(50) NULL,
  plan_source_concept_id        INTEGER     NULL,
  sponsor_concept_id            INTEGER     NULL,
  sponsor_source_value          VARCHAR(50) NULL,
  sponsor_source_concept_id     INTEGER     NULL,
  family_source_value           VARCHAR(50) NULL,
  stop_reason_concept_id        INTEGER     NULL,
  stop_reason_source_value      VARCHAR(50) NULL,
  stop_reason_source_concept_id INTEGER     NULL
);

CREATE TABLE location (
  location_id           BIGINT      NOT NULL,
  address_1             VARCHAR(50) NULL,
  address_2             VARCHAR(50) NULL,
  city                  VARCHAR(50) NULL,
  state                 VARCHAR(2)  NULL,
  zip                   VARCHAR(9)  NULL,
  county                VARCHAR(20) NULL,
  location_source_value VARCHAR(50) NULL
);

CREATE TABLE care_site (
  care_site_id                  BIGINT       NOT NULL,
  care_site_name                VARCHAR(255) NULL,
  place_of_service_concept_id   INTEGER      NULL,
  location_id                   BIGINT       NULL,
  care_site_source_value        VARCHAR(50)  NULL,
  place_of_service_source_value VARCHAR(50)  NULL
);

CREATE TABLE provider (
  provider_id                 BIGINT       NOT NULL,
  provider_name               VARCHAR(255) NULL,
  npi                         VARCHAR(20)  NULL,
  dea                         VARCHAR(20)  NULL,
  specialty_concept_id        INTEGER      NULL,
  care_site_id                BIGINT       NULL,
  year_of_birth               INTEGER      NULL,
  gender_concept_id           INTEGER      NULL,
  provider_source_value       VARCHAR(50)  NULL,
  specialty_source_value      VARCHAR(50)  NULL,
  specialty_source_concept_id INTEGER      NULL,
  gender_source_value         VARCHAR(50)  NULL,
  gender_source_concept_id    INTEGER      NULL
);

CREATE TABLE concept (
  concept_id       INTEGER      NOT NULL,
  concept_name     VARCHAR(255) NOT NULL,
  domain_id        VARCHAR(20)  NOT NULL,
  vocabulary_id    VARCHAR(20)  NOT NULL,
  concept_class_id VARCHAR(20)  NOT NULL,
  standard_concept VARCHAR(1)   NULL,
  concept_code     VARCHAR(50)  NOT NULL,
  valid_start_date DATE         NOT NULL,
  valid_end_date   DATE         NOT NULL,
  invalid_reason   VARCHAR(1)   NULL
);

CREATE TABLE concept_ancestor (
  ancestor_concept_id      INTEGER NOT NULL,
  descendant_concept_id    INTEGER NOT NULL,
  min_levels_of_separation INTEGER NOT NULL,
  max_levels_of_separation INTEGER NOT NULL
);

CREATE TABLE concept_relationship (
  concept_id_1     INTEGER     NOT NULL,
  concept_id_2     INTEGER     NOT NULL,
  relationship_id  VARCHAR(20) NOT NULL,
  valid_start_date DATE        NOT NULL,
  valid_end_date   DATE        NOT NULL,
  invalid_reason   VARCHAR(1)  NULL
);
