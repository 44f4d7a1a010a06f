// The domain's enums come from the Prisma schema (one owner) and are registered once with type-graphql.
import 'reflect-metadata';
import { registerEnumType } from 'type-graphql';
import { AntiVegfAgent, DiabetesType, Eye, GradeSource, ImageQuality, Laterality, Sex, TreatmentType } from '../../generated/prisma/enums.js';

registerEnumType(Sex, { name: 'Sex' });
registerEnumType(DiabetesType, { name: 'DiabetesType' });
registerEnumType(Eye, { name: 'Eye', description: 'The eye a photograph shows.' });
registerEnumType(Laterality, { name: 'Laterality', description: 'The eye(s) a diagnosis or treatment applies to.' });
registerEnumType(ImageQuality, { name: 'ImageQuality' });
registerEnumType(GradeSource, { name: 'GradeSource', description: 'Who produced a grading.' });
registerEnumType(TreatmentType, { name: 'TreatmentType' });
registerEnumType(AntiVegfAgent, { name: 'AntiVegfAgent' });

export { AntiVegfAgent, DiabetesType, Eye, GradeSource, ImageQuality, Laterality, Sex, TreatmentType };

/** ICDR grade names, indexed by grade. */
export const ICDR_GRADE_NAMES = ['No DR', 'Mild NPDR', 'Moderate NPDR', 'Severe NPDR', 'Proliferative DR'] as const;
