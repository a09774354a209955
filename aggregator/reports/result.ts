import type { ReportTypeIO } from './report-types.js';
import type { EvidenceAnnex, ReportOutput } from './report-type.js';

export type { ReportFile } from './report-file.js';
export type { EvidenceAnnex } from './report-type.js';

/** What a run of one report type produces. */
export interface ReportResultOf<Name extends string, Summary, Data> extends ReportOutput<Summary, Data> {
  report: string;
  reportType: Name;
  startTime: string;
  endTime: string;
  generatedAt: string;
  evidence: EvidenceAnnex;
}

/**
 * What a run produces; archived as is and never changed. One shape per report
 * type, told apart by reportType, with that type's summary and data.
 */
export type ReportResult = {
  [K in keyof ReportTypeIO]: ReportResultOf<K, ReportTypeIO[K]['summary'], ReportTypeIO[K]['data']>;
}[keyof ReportTypeIO];
