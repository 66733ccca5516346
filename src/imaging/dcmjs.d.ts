/**
 * The part of dcmjs (https://github.com/dcmjs-org/dcmjs, no bundled types) that the facade uses.
 * Data sets are in the DICOM JSON model keyed by upper-case hex tags (PS3.18 Annex F).
 */
declare module 'dcmjs' {
  export interface DicomElement {
    vr: string;
    Value?: unknown[];
    InlineBinary?: string;
  }
  export type DicomDataset = Record<string, DicomElement>;
  export interface ReadOptions {
    ignoreErrors?: boolean;
    untilTag?: string | null;
    includeUntilTagValue?: boolean;
    noCopy?: boolean;
    forceStoreRaw?: boolean;
  }
  export class DicomDict {
    constructor(meta: DicomDataset);
    meta: DicomDataset;
    dict: DicomDataset;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }
  export const data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: ReadOptions): DicomDict };
    DicomDict: typeof DicomDict;
    DicomMetaDictionary: {
      uid(): string;
      naturalizeDataset(dataset: DicomDataset): Record<string, unknown>;
      denaturalizeDataset(dataset: Record<string, unknown>): DicomDataset;
    };
  };
  /** loglevel (https://github.com/pimterry/loglevel) loggers; dcmjs warns about malformed values on `validation.dcmjs`. */
  export interface Logger {
    getLevel(): number;
    setLevel(level: number | 'silent' | 'warn', persist?: boolean): void;
  }
  export const log: { getLogger(name: string): Logger };
  const dcmjs: { data: typeof data; log: typeof log };
  export default dcmjs;
}
