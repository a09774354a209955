import { errorDetail } from '../../common/errors.js';
import { configError } from '../errors.js';
import { readClusterSnapshot, type ClusterSnapshot, type SnapshotProblem } from './read.js';

export { readClusterSnapshot, type ClusterSnapshot, type SnapshotProblem } from './read.js';

/** How many problems the start-up error names (all are counted). */
const PROBLEMS_SHOWN = 5;

/**
 * --cluster-snapshot DIR: read the directory, or fail start-up with VERDICT_CONFIG_INVALID naming how many documents
 * could not be used and the first of them (a snapshot read in part would report on a cluster that does not exist).
 */
export function loadClusterSnapshot(dir: string): ClusterSnapshot {
  let read: { snapshot: ClusterSnapshot; problems: SnapshotProblem[] };
  try {
    read = readClusterSnapshot(dir);
  } catch (err) {
    throw configError(`--cluster-snapshot ${dir}: ${errorDetail(err)}`, { cause: err });
  }
  const { snapshot, problems } = read;
  if (problems.length > 0) {
    const shown = problems
      .slice(0, PROBLEMS_SHOWN)
      .map((p) => `${p.file}${p.document ? ` document ${p.document}` : ''}: ${p.reason}`)
      .join('; ');
    throw configError(
      `--cluster-snapshot ${dir}: ${problems.length} document(s) cannot be used: ${shown}${problems.length > PROBLEMS_SHOWN ? '; ...' : ''}. Fix or remove them (kubectl get -A -o yaml writes what is needed)`,
    );
  }
  if (snapshot.files === 0)
    throw configError(
      `--cluster-snapshot ${dir}: no .yaml, .yml or .json file in it; write one with kubectl get -A -o yaml`,
    );
  return snapshot;
}
