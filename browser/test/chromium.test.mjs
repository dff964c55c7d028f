// End-to-end in Debian's Chromium (DevTools protocol): see lib/scenarios.mjs.
import { browserSuite } from './lib/scenarios.mjs';

browserSuite('chromium');
