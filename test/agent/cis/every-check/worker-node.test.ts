import t from 'tap';
import { driveEveryCheck } from './drive.js';

// CIS section 4 (worker nodes) of every bundled benchmark:
// each audited check PASSes and FAILs on a real node (drive.ts).
driveEveryCheck(t, 'worker-node');
