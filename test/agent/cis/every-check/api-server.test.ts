import t from 'tap';
import { driveEveryCheck } from './drive.js';

// CIS section 1.2 (API server) of every bundled benchmark:
// each audited check PASSes and FAILs on a real node (drive.ts).
driveEveryCheck(t, 'api-server');
