/**
 * Re-renders a report from a run's raw results without measuring again (e.g. after changing bench/report.ts):
 *
 *   node bench/rerender.ts [bench/.work/results.json] [bench/RESULTS.md]
 */
import { readFileSync } from 'node:fs';
import type { Result } from './context.ts';
import { type Conditions, writeReport } from './report.ts';

const [input = 'bench/.work/results.json', output = 'bench/RESULTS.md'] = process.argv.slice(2);
const raw = JSON.parse(readFileSync(input, 'utf8')) as { conditions: Conditions; results: Result[] };
writeReport(output, raw.results, raw.conditions);
console.log(`wrote ${output} from ${input}`);
