// What the save-case form offers and what its action answers; pure, so the form (a client component) shares it.
export const LATERALITIES = ['LEFT', 'RIGHT', 'BOTH', 'UNSPECIFIED'] as const;
export const ANTI_VEGF_AGENTS = ['AFLIBERCEPT', 'RANIBIZUMAB', 'BEVACIZUMAB', 'FARICIMAB', 'BROLUCIZUMAB', 'OTHER'] as const;
/** Rows of each record list the form offers; blank rows are left out. */
export const RECORD_ROWS = 2;

export type SaveCaseState =
  | { kind: 'idle' }
  | { kind: 'saved'; status: 'ADDED' | 'DUPLICATE'; caseId: string; mrn: string }
  | { kind: 'refused'; code: string; message: string; field: string | null; conflictCaseId: string | null };

