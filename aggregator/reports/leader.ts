import pg from 'pg';
import type { Logger } from 'pino';
import { SCHEDULER_LOCK_KEY } from '../store/locks.js';

/**
 * Leadership for the report scheduler among replicas sharing one PostgreSQL
 * database without a cluster: a session-level advisory lock held on one
 * dedicated connection. If the connection drops, PostgreSQL releases the lock
 * and another replica takes it on its next try; this one then tries again.
 */
export class PostgresLeader {
  private client?: pg.Client;
  private leader = false;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
  ) {}

  async isLeader(): Promise<boolean> {
    try {
      if (!this.client) {
        const c = new pg.Client({ connectionString: this.url, application_name: 'verdict-scheduler' });
        c.on('error', () => {
          this.client = undefined;
          this.setLeader(false);
        });
        await c.connect();
        this.client = c;
      }
      if (!this.leader) {
        const r = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
          SCHEDULER_LOCK_KEY,
        ]);
        this.setLeader(r.rows[0]?.ok === true);
      }
      return this.leader;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot reach PostgreSQL for scheduler leadership');
      await this.client?.end().catch(() => {});
      this.client = undefined;
      this.setLeader(false);
      return false;
    }
  }

  private setLeader(v: boolean): void {
    if (v !== this.leader)
      this.log.info(
        { leader: v },
        v ? 'this replica now schedules reports' : 'this replica no longer schedules reports',
      );
    this.leader = v;
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => {});
    this.client = undefined;
    this.leader = false;
  }
}
