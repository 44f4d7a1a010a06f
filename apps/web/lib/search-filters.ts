// The search filters' allowed values, as in schema.graphql; pure, so client components share them.
export const EYES = ['LEFT', 'RIGHT'] as const;
export type Eye = (typeof EYES)[number];

export const SEXES = ['FEMALE', 'MALE', 'OTHER', 'UNKNOWN'] as const;
export type Sex = (typeof SEXES)[number];
export const TREATMENT_TYPES = ['ANTI_VEGF', 'PRP_LASER', 'FOCAL_LASER', 'VITRECTOMY', 'OBSERVATION'] as const;
export type TreatmentType = (typeof TREATMENT_TYPES)[number];
export const AGE_MIN = 0;
export const AGE_MAX = 120;
