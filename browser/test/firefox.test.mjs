// End-to-end in Firefox ESR (WebDriver BiDi): see lib/scenarios.mjs.
import { browserSuite } from './lib/scenarios.mjs';

browserSuite('firefox');
