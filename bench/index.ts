import { runCisBench } from './cis.js';

/** `npm run bench`: every figure, each printed with its ratio and goal. */
runCisBench();
