#!/usr/bin/env python3
"""GiBleed with the facts GiBleed lacks, for the FeatureExtraction analyses that read them: a copy
of a CDM CSV folder with, deterministically (no randomness: functions of the row ids),

- measurement and observation `value_as_number` and `unit_concept_id` (values for 3 of 4 rows;
  units 8840, 9840 (same last three digits as 8840: FE pools them), 0, 8713 or NULL) — for
  DomainValueAsNumber (705-708, 809-812);
- `care_site_id` on a third of the persons, on the visits of some (person, end date) pairs (a
  function of the pair, so rows FE's ROW_NUMBER cannot order apart have one care site) and
  visit_detail rows (a copy of every third visit, with their own care sites) — for CareSite (12);
- ICD10 concepts with "Maps to" SNOMED conditions of GiBleed's condition eras — for HFRS (926): two
  categories mapping to one concept, one category to two concepts, and a code in no category.

usage: values_cdm.py SRC_DIR DST_DIR
"""
import csv
import os
import shutil
import sys

MASK = 2**32


def h(x):
    return (int(float(x)) * 2654435761) % MASK


def rewrite(src, dst, name, change):
    with open(os.path.join(src, name), newline='') as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = [change(r) or r for r in reader]
    with open(os.path.join(dst, name), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=header, lineterminator='\n')
        w.writeheader()
        w.writerows(rows)
    return header, rows


def with_value(id_field):
    units = ['8840', '9840', '0', '8713', '']

    def change(r):
        k = h(r[id_field])
        if k % 4 != 0:
            r['value_as_number'] = '%.1f' % ((k >> 4) % 2000 / 10.0)
        r['unit_concept_id'] = units[(k >> 12) % 5]
    return change


def person_site(r):
    p = int(r['person_id'])
    r['care_site_id'] = str(1 + p % 4) if p % 3 == 0 else ''


def span_site(person, end, base):
    k = h(person) ^ h(end.replace('-', ''))
    return str(base + k % 3) if (k >> 7) % 2 == 0 else ''


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.endswith('.csv') or name.endswith('.tsv'):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    rewrite(src, dst, 'measurement.csv', with_value('measurement_id'))
    rewrite(src, dst, 'observation.csv', with_value('observation_id'))
    rewrite(src, dst, 'person.csv', person_site)

    def visit_site(r):
        r['care_site_id'] = span_site(r['person_id'], r['visit_end_date'], 100)
    _, visits = rewrite(src, dst, 'visit_occurrence.csv', visit_site)

    with open(os.path.join(src, 'visit_detail.csv'), newline='') as f:
        header = csv.DictReader(f).fieldnames
    details = []
    for v in visits:
        if int(v['visit_occurrence_id']) % 3 != 0:
            continue
        d = {k: '' for k in header}
        d.update({
            'visit_detail_id': v['visit_occurrence_id'],
            'person_id': v['person_id'],
            'visit_detail_concept_id': v['visit_concept_id'],
            'visit_detail_start_date': v['visit_start_date'],
            'visit_detail_start_datetime': v['visit_start_date'],
            'visit_detail_end_date': v['visit_end_date'],
            'visit_detail_end_datetime': v['visit_end_date'],
            'visit_detail_type_concept_id': '44818517',
            'care_site_id': span_site(v['person_id'], v['visit_end_date'], 200),
            'visit_occurrence_id': v['visit_occurrence_id'],
        })
        details.append(d)
    with open(os.path.join(dst, 'visit_detail.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=header, lineterminator='\n')
        w.writeheader()
        w.writerows(details)

    # ICD10 code -> SNOMED condition concept of GiBleed.
    icd10 = [
        (2000000001, 'F00.1', 40481087),  # Dementia in Alzheimers disease -> Viral sinusitis
        (2000000002, 'G81.9', 4112343),   # Hemiplegia -> Acute viral pharyngitis
        (2000000003, 'I69.3', 260139),    # Sequelae of cerebrovascular disease -> Acute bronchitis
        (2000000004, 'R29.6', 80180),     # Other nervous and musculoskeletal -> Osteoarthritis
        (2000000005, 'N39.0', 80180),     # Other disorders of urinary system -> Osteoarthritis
        (2000000006, 'W19', 81151),       # Unspecified fall -> Sprain of ankle
        (2000000007, 'S00.0', 378001),    # Superficial injury of head -> Concussion
        (2000000008, 'S00.8', 4218389),   # Superficial injury of head -> Whiplash injury
        (2000000009, 'R41.8', 372328),    # Other cognitive functions -> Otitis media
        (2000000010, 'Z00.0', 28060),     # in no HFRS category
    ]
    concept_header, _ = rewrite(src, dst, 'concept.csv', lambda r: None)
    with open(os.path.join(dst, 'concept.csv'), 'a', newline='') as f:
        w = csv.DictWriter(f, fieldnames=concept_header, lineterminator='\n')
        for cid, code, _ in icd10:
            w.writerow({'concept_id': cid, 'concept_name': 'ICD10 ' + code, 'domain_id': 'Condition',
                        'vocabulary_id': 'ICD10', 'concept_class_id': 'ICD10 code', 'standard_concept': '',
                        'concept_code': code, 'valid_start_date': '1970-01-01',
                        'valid_end_date': '2099-12-31', 'invalid_reason': ''})
    rel_header, _ = rewrite(src, dst, 'concept_relationship.csv', lambda r: None)
    with open(os.path.join(dst, 'concept_relationship.csv'), 'a', newline='') as f:
        w = csv.DictWriter(f, fieldnames=rel_header, lineterminator='\n')
        for cid, _, target in icd10:
            w.writerow({'concept_id_1': cid, 'concept_id_2': target, 'relationship_id': 'Maps to',
                        'valid_start_date': '1970-01-01', 'valid_end_date': '2099-12-31',
                        'invalid_reason': ''})
    rows = os.path.join(dst, 'ROWCOUNTS.tsv')
    if os.path.exists(rows):
        os.remove(rows)


if __name__ == '__main__':
    main()
