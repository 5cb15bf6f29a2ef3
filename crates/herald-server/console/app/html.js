// @ts-check
// The console's view layer: Preact with htm tagged templates (no JSX, so no build step).
import { h, render, Fragment } from '../vendor/preact.mjs';
import htm from '../vendor/htm.mjs';

export const html = htm.bind(h);
export { render, Fragment };
export { useState, useEffect, useRef, useMemo, useCallback, useReducer, useId } from '../vendor/hooks.mjs';
