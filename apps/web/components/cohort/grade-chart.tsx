'use client';
// Stacked bars of the grade distribution (baseline and latest visit). The same figures are in the tables below
// it, which are what screen readers should use; suppressed entries are left out of the bars, not guessed.
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';

export interface GradeChartBar {
  label: string;
  /** Count per grade column; null = suppressed. */
  counts: (number | null)[];
}

export const GRADE_COLOURS = ['#4c9f70', '#b5c94a', '#e0a526', '#d9622b', '#a3223a'];

export function GradeChart({ grades, bars, unit }: { grades: string[]; bars: GradeChartBar[]; unit: string }) {
  const data = bars.map((bar) => Object.fromEntries([['label', bar.label], ...grades.map((grade, index) => [grade, bar.counts[index] ?? 0])]));
  return (
    <div className="chart" role="group" aria-label={`Stacked bars: ${unit} by ICDR grade, ${bars.map((bar) => bar.label).join(' and ')}`}>
      <ResponsiveContainer width="100%" height={300}>
        <BarChart data={data} layout="vertical" margin={{ top: 8, right: 24, bottom: 8, left: 8 }}>
          <CartesianGrid strokeDasharray="3 3" horizontal={false} />
          <XAxis type="number" label={{ value: unit, position: 'insideBottom', offset: -4 }} />
          <YAxis type="category" dataKey="label" width={80} />
          <Tooltip />
          <Legend verticalAlign="top" />
          {grades.map((grade, index) => (
            <Bar key={grade} dataKey={grade} stackId="grades" fill={GRADE_COLOURS[index % GRADE_COLOURS.length]} isAnimationActive={false} />
          ))}
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
