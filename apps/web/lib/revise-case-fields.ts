// What the revise form (CBR revise) answers; pure, so the form (a client component) shares it.
export type ReviseCaseState =
  | { kind: 'idle' }
  | {
      kind: 'revised';
      caseId: string;
      drGrade: number;
      drGradeName: string;
      maculopathy: boolean | null;
      source: string;
      grader: string | null;
      /** Null when no suggestion was shown for the photograph, or it abstained. */
      agrees: boolean | null;
      suggestedGrade: number | null;
    }
  | { kind: 'refused'; code: string; message: string; field: string | null };
