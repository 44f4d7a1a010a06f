// An ImportRecord as an importer builds one for a labels file without dates: the 1900-01-01 placeholder visit,
// one dataset grading, no diagnoses or treatments. Suites override what they test.
export function makeUndatedImportRecord(bytes, { mrn, dataset, mrnSystem, eye = 'LEFT', row = 1, birthYear = null, isPerImagePatient = false, mimeType = null }) {
  return {
    row,
    dataset: { name: dataset, description: null, isSynthetic: false },
    patient: { mrn, mrnSystem, isPerImagePatient, birthYear, sex: null, diabetesType: null },
    visitDate: '1900-01-01',
    isVisitDateKnown: false,
    eye,
    isEyeAssumed: false,
    image: { kind: 'bytes', bytes, name: isPerImagePatient ? mrn : `${mrn}-${eye}`, mimeType },
    quality: 'UNKNOWN',
    grading: { drGrade: 1, maculopathy: null, macularEdemaRisk: null, source: 'DATASET_LABEL', grader: 'test', originalScale: null, originalValue: null, gradedOn: '1900-01-01' },
    diagnoses: [],
    treatments: [],
    externalLinks: [],
  };
}
