import t from 'tap';
import { driveEveryCheck } from './drive.js';

// CIS sections 1.3, 1.4, 2 and 3 (controller manager, scheduler, etcd, control plane configuration) of every
// bundled benchmark: each audited check PASSes and FAILs on a real node (drive.ts).
driveEveryCheck(t, 'control-plane-components');
