import t from 'tap';
import { driveEveryCheck } from './drive.js';

// CIS section 1.1 (control plane node configuration files) of every bundled benchmark:
// each audited check PASSes and FAILs on a real node (drive.ts).
driveEveryCheck(t, 'control-plane-files');
