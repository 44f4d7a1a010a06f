// Display text for the API's enum values. Unknown values (a newer API than this page) fall back to a readable
// form of the enum name rather than failing.
const TREATMENT_TYPE_LABELS: Record<string, string> = {
  ANTI_VEGF: 'Anti-VEGF',
  PRP_LASER: 'PRP laser',
  FOCAL_LASER: 'Focal laser',
  VITRECTOMY: 'Vitrectomy',
  OBSERVATION: 'Observation',
};

const LATERALITY_LABELS: Record<string, string | null> = {
  LEFT: 'left eye',
  RIGHT: 'right eye',
  BOTH: 'both eyes',
  UNSPECIFIED: null,
};

export const NONE = '—';

export function formatEnum(value: string | null | undefined): string {
  if (!value) return NONE;
  const words = value.toLowerCase().replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function formatTreatmentType(type: string): string {
  return TREATMENT_TYPE_LABELS[type] ?? formatEnum(type);
}

/** Null when the eye is unknown or unspecified, so callers can leave it out. */
export function formatLaterality(eye: string | null | undefined): string | null {
  if (!eye) return null;
  const label = LATERALITY_LABELS[eye];
  return label === undefined ? formatEnum(eye).toLowerCase() : label;
}

/** Calendar date of an ISO date or date-time string, as sent by the API. */
export function formatDate(value: string): string {
  return value.slice(0, 10);
}
