"""
episode_manager: runs the episodes of one cell and turns every control step into a transition.

It starts episodes (resetting a simulator through its reset service, or waiting for a person on a
real cell), ends them on success, time limit or request, takes the reward from a chosen source,
and publishes a Transition for each step with everything the learner needs. With ``episodes``
set it runs that many, prints the success rate with its 95% interval, and exits.
"""

import json
import time
from typing import List, Optional
import uuid

from hilresrl_common.conversions import (ns_to_stamp, parse_source, raw_image_topic,
                                         stamp_to_ns, to_named_arrays)
from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.observation import Observation, ObservationAssembler
from hilresrl_common.observation_topics import (declare_observation_parameters,
                                                subscribe_observations)
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_common.success_statistics import wilson_interval
from hilresrl_msgs.msg import (EpisodeEvent, EpisodeOutcome, ExecutedAction, ImageRef,
                               LearnerStatus, Transition)
from hilresrl_msgs.msg import Mode as ModeMsg
from hilresrl_msgs.srv import EndEpisode, ResetCell, SetMode, StartEpisode
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, String

from .episode_manager_parameters import PARAMETERS
from .episodes import EpisodeError, EpisodeSummary, EpisodeTracker, Mode, Outcome
from .transitions import Step, StepAssembler


class EpisodeManagerNode(Node):
    """Episode boundaries, rewards, outcomes and transitions of one cell."""

    def __init__(self, **kwargs):
        super().__init__('episode_manager', **kwargs)

        values = declare_parameters(self, PARAMETERS)
        self.robot_id: str = values['robot_id']
        self.max_episode_steps: int = values['max_episode_steps'] or 0
        self.reward_source: str = values['reward_source']
        self.reward_name: str = values['reward_name']
        self.success_button: int = values['spacemouse.success_button']
        self.reset_service: str = values['reset_service']
        self.auto_start: bool = values['auto_start']
        self.episodes_to_run: int = values['episodes'] or 0
        self.seed: int = values['seed']
        self.wait_for_topics: List[str] = [topic for topic in values['wait_for_topics'] if topic]
        if values['wait_for_recorder']:
            self.wait_for_topics.append('recorder_status')
        self.summary_file: str = values['summary_file'] or ''
        self.eval_every: int = values['eval_every'] or 0
        self.eval_episodes: int = values['eval_episodes']
        self.learner_pace: float = values['learner_pace'] or 0.0
        self.learner_pace_slack: int = values['learner_pace_slack']
        self.wait_for_learner: bool = values['wait_for_learner']
        self.learner_timeout_s: float = values['learner_timeout_s']
        observation = declare_observation_parameters(self)
        mode = Mode[values['initial_mode'].upper()]
        if self.reward_source == 'observation' and self.reward_name not in [
                parse_source(source)[0] for source in observation.sources]:
            raise ConfigurationError(f'reward_name {self.reward_name!r} must be one of the '
                                     'observation_sources when reward_source is observation')

        self._episodes = EpisodeTracker(mode)
        self._assembler = ObservationAssembler(observation.sources, observation.sync)
        self._steps = StepAssembler()
        # Observation array name -> (camera, topic, source) of each camera, raw or compressed:
        # transitions name its images by the camera (its raw topic, as the learner's
        # camera_inputs name it) and the topic this node reads them from.
        self._image_topics = {}
        for source in observation.sources:
            topic, kind = parse_source(source)
            if kind in ('image', 'compressed_image'):
                camera = raw_image_topic(topic) if kind == 'compressed_image' else topic
                self._image_topics[f'image/{camera}'] = (camera, topic, source)
        self._sequence = 0
        self._instruction = ''
        self._refinement_command = ''
        self._success_signal = False
        self._reset_in_flight = False
        self._reset_count = 0
        self._results: List[EpisodeSummary] = []
        self._train_since_eval = 0
        self._eval_left = 0
        self._eval_round = 0  # the learner tells rounds apart by this id
        self._learner: Optional[LearnerStatus] = None
        self._learner_heard_s: Optional[float] = None  # when the last learner_status arrived
        self._learner_silent = False
        self._estopped = False
        # Drawn afresh at each start, carried in every transition: the learner tells a restart
        # of this cell (sequence from 1 again) from a duplicate by it.
        self.cell_start_id = uuid.uuid4().hex
        self.finished = False
        self._episode_limit = self.max_episode_steps
        self._started_at = time.monotonic()

        self._transitions = self.create_publisher(Transition, 'transitions', TRANSITIONS_QOS)
        self._events = self.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
        self._mode = self.create_publisher(ModeMsg, 'mode', LATCHED_QOS)
        subscribe_observations(self, observation, self._on_observation_message)
        self.create_subscription(ExecutedAction, 'executed_action', self._on_executed,
                                 COMMAND_QOS)
        self.create_subscription(String, 'task_instruction', self._on_instruction, LATCHED_QOS)
        self.create_subscription(String, 'refinement_command', self._on_refinement_command,
                                 LATCHED_QOS)
        if self.reward_source == 'topic':
            self.create_subscription(Bool, self.reward_name, self._on_success_topic,
                                     COMMAND_QOS)
        if self.reward_source == 'button':
            self.create_subscription(Joy, 'spacenav/joy', self._on_joy, COMMAND_QOS)
        if self.learner_pace > 0 or self.wait_for_learner:
            self.create_subscription(LearnerStatus, 'learner_status', self._on_learner_status,
                                     LATCHED_QOS)
        # The arbiter's e-stop events (this node's own events on the topic are ignored).
        self.create_subscription(EpisodeEvent, 'episode_events', self._on_cell_event,
                                 EVENTS_QOS)
        self._reset_client = (self.create_client(ResetCell, self.reset_service)
                              if self.reset_service else None)
        self.create_service(StartEpisode, 'start_episode', self._on_start)
        self.create_service(EndEpisode, 'end_episode', self._on_end)
        self.create_service(SetMode, 'set_mode', self._on_set_mode)
        self.create_timer(0.1, self._on_tick)
        self._mode.publish(ModeMsg(value=int(mode)))
        limit = f'{self.episodes_to_run} episodes' if self.episodes_to_run else 'until stopped'
        self.get_logger().info(f'cell {self.robot_id}: mode {mode.name}, {limit}')

    # --- starting episodes ---------------------------------------------------------------
    def _on_tick(self) -> None:
        self._watch_learner()
        if self._estopped or self._learner_silent:
            return
        if (self.auto_start and not self._episodes.running and not self._reset_in_flight
                and self._episodes.mode != Mode.PAUSE and self._more_episodes()
                and self._graph_ready()):
            mode = self._next_mode()
            if mode == Mode.TRAIN and not self._learner_caught_up():
                return
            self._begin_episode(mode)

    def _next_mode(self) -> Mode:
        """Return the mode of the next episode: an evaluation round every eval_every."""
        if (self._episodes.mode == Mode.TRAIN and self.eval_every and self._eval_left == 0
                and self._train_since_eval >= self.eval_every):
            self._eval_left, self._train_since_eval = self.eval_episodes, 0
            self._eval_round += 1
        return Mode.EVAL if self._eval_left > 0 else self._episodes.mode

    def _learner_caught_up(self) -> bool:
        if self.wait_for_learner and (self._learner is None or self._learner.state in (
                LearnerStatus.STATE_LOADING, LearnerStatus.STATE_OFFLINE_WARMUP)):
            what = ('to start' if self._learner is None
                    else f'({self._learner.state.replace("_", " ")})')
            self.get_logger().info(f'waiting for the learner {what}',
                                   throttle_duration_sec=30.0)
            return False
        if self.learner_pace <= 0 or self._learner is None:
            return True
        # A share of the ratio the learner keeps (a learner that does not say: 1 per step).
        ratio = self._learner.update_to_data_target or 1.0
        wanted = self.learner_pace * ratio * (self._learner.env_steps - self.learner_pace_slack)
        if self._learner.updates >= wanted or self._learner.state == LearnerStatus.STATE_FINISHED:
            return True
        self.get_logger().info(f'waiting for the learner ({self._learner.updates} updates for '
                               f'{self._learner.env_steps} transitions)',
                               throttle_duration_sec=30.0)
        return False

    def _on_learner_status(self, status: LearnerStatus) -> None:
        self._learner = status
        self._learner_heard_s = time.monotonic()
        if self._learner_silent:
            self._learner_silent = False
            self._mode.publish(ModeMsg(value=int(self._episodes.mode)))
            self.get_logger().info(f'the learner is back ({status.state}): mode '
                                   f'{self._episodes.mode.name} again')

    def _watch_learner(self) -> None:
        """Abort and pause when a learner the cell waits on has stopped publishing status."""
        if (self.learner_timeout_s <= 0 or self._learner_silent
                or self._learner_heard_s is None
                or time.monotonic() - self._learner_heard_s < self.learner_timeout_s):
            return
        self._learner_silent = True
        self.get_logger().error(
            f'no learner_status for {self.learner_timeout_s:g} s: the learner has stopped or '
            'is unreachable; the robot is paused (mode PAUSE) until it is back')
        if self._episodes.running and self._episodes.episode_mode == Mode.TRAIN:
            self._finish_episode(Outcome.ABORT, 'learner silent')
        self._mode.publish(ModeMsg(value=int(Mode.PAUSE)))

    def _on_cell_event(self, event: EpisodeEvent) -> None:
        if event.robot_id not in ('', self.robot_id):
            return
        if event.event == EpisodeEvent.SAFETY_STOP and not self._estopped:
            self._estopped = True
            self.get_logger().warning(f'e-stop ({event.detail or "no detail"}): no episode '
                                      'starts until it is released')
            if self._episodes.running:
                self._finish_episode(Outcome.ABORT, 'e-stop')
        elif event.event == EpisodeEvent.SAFETY_RELEASE and self._estopped:
            self._estopped = False
            self.get_logger().info('e-stop released: episodes may start again')

    def _graph_ready(self) -> bool:
        missing = [f'publishers on {topic}' for topic in self.wait_for_topics
                   if not self.count_publishers(topic)]
        if self._reset_client is not None and not self._reset_client.service_is_ready():
            missing.append(f'the {self.reset_service} service')
        if missing and time.monotonic() - self._started_at > 30.0:
            self.get_logger().warning('waiting for ' + ', '.join(missing),
                                      throttle_duration_sec=30.0)
        return not missing

    def _more_episodes(self) -> bool:
        return not self.finished and (not self.episodes_to_run
                                      or len(self._results) < self.episodes_to_run)

    def _begin_episode(self, mode: Optional[Mode] = None) -> None:
        # The episode's mode goes out before the reset, so that the policy and the arbiter
        # treat its first step right (no exploration or intervention in evaluation).
        self._mode.publish(ModeMsg(value=int(self._episodes.mode if mode is None else mode)))
        if self._reset_client is None:
            self._open_episode(mode, first_stamp_ns=0)
            return
        self._reset_in_flight = True
        seed = self.seed + self._reset_count
        self._reset_count += 1
        future = self._reset_client.call_async(ResetCell.Request(seed=seed))
        future.add_done_callback(lambda done: self._on_reset_done(done, mode))

    def _on_reset_done(self, future, mode: Optional[Mode]) -> None:
        self._reset_in_flight = False
        response = future.result()
        if response is None or not response.success:
            reason = response.message if response is not None else 'no response'
            self.get_logger().error(f'reset failed: {reason}; trying again',
                                    throttle_duration_sec=5.0)
            return
        if response.instruction:
            self._instruction = response.instruction
        if self._estopped or self._learner_silent:
            return  # stopped while the cell was reset: the next tick starts over
        self._episode_limit = self.max_episode_steps or response.max_episode_steps
        self._open_episode(mode, stamp_to_ns(response.observation_stamp))

    def _open_episode(self, mode: Optional[Mode], first_stamp_ns: int) -> int:
        episode_id = self._episodes.start(mode)
        self._success_signal = False
        self._assembler.reset()
        self._steps.start(first_stamp_ns)
        # Stamped with the episode's first observation when the reset said which it is, so
        # that the policy nodes can tell plans of the last episode from plans of this one.
        self._publish_event(EpisodeEvent.EPISODE_START, detail=self._instruction,
                            stamp_ns=first_stamp_ns)
        return episode_id

    # --- steps ---------------------------------------------------------------------------
    def _on_observation_message(self, source, stamp_ns, arrays) -> None:
        observation = self._assembler.add(source, stamp_ns, arrays)
        if observation is not None:
            self._handle(self._steps.add_observation(observation))

    def _on_executed(self, message: ExecutedAction) -> None:
        self._handle(self._steps.add_action(stamp_to_ns(message.header.stamp), message))

    def _handle(self, steps: List[Step]) -> None:
        for step in steps:
            if not self._episodes.running:
                return
            self._on_step(step)

    def _on_step(self, step: Step) -> None:
        if self.reward_source == 'observation':
            success = bool(step.next_observation.arrays[self.reward_name][0] > 0.5)
        else:
            success, self._success_signal = self._success_signal, False
        action: ExecutedAction = step.action
        terminated = success
        truncated = (not terminated and self._episode_limit > 0
                     and self._episodes.steps + 1 >= self._episode_limit)
        transition = self._transition(step, float(success), terminated, truncated)
        self._transitions.publish(transition)
        try:
            self._episodes.record_step(transition.reward, action.intervened)
        except EpisodeError as error:
            self.get_logger().error(str(error), throttle_duration_sec=5.0)
        if terminated or truncated:
            self._finish_episode(Outcome.SUCCESS if terminated else Outcome.TIMEOUT)

    def _transition(self, step: Step, reward: float, terminated: bool,
                    truncated: bool) -> Transition:
        action: ExecutedAction = step.action
        self._sequence += 1
        message = Transition(
            robot_id=self.robot_id, episode_id=self._episodes.episode_id,
            step=self._episodes.steps, sequence=self._sequence,
            observation=to_named_arrays(step.observation.arrays),
            images=self._image_refs(step.observation),
            next_observation=to_named_arrays(step.next_observation.arrays),
            next_images=self._image_refs(step.next_observation),
            instruction=self._instruction, base_action=action.base_action,
            residual=action.residual, residual_scale=action.residual_scale,
            executed_action=action.executed_action, human_action=action.human_action,
            intervened=action.intervened, intervened_axes=action.intervened_axes,
            reward=reward, terminated=terminated, truncated=truncated,
            evaluation=self._episodes.episode_mode == Mode.EVAL,
            weights_version=action.weights_version, latent=action.latent,
            latent_condition=action.latent_condition,
            latent_weights_version=action.latent_weights_version,
            correction=action.correction, refinement_command=self._refinement_command,
            held=bool(action.held), hold_reason=action.hold_reason,
            cell_start_id=self.cell_start_id)
        message.header.stamp = ns_to_stamp(step.observation.stamp_ns)
        return message

    def _image_refs(self, observation: Observation) -> List[ImageRef]:
        refs = []
        for name, (camera, topic, source) in self._image_topics.items():
            pixels = observation.arrays[name]
            # The image's own stamp: with latest sync it is older than the observation's. The
            # topic: where its bytes are, raw or compressed (a recorder's bag has them there).
            refs.append(ImageRef(name=camera, topic=self.resolve_topic_name(topic),
                                 stamp=ns_to_stamp(observation.stamp_of(source)),
                                 height=pixels.shape[0], width=pixels.shape[1],
                                 encoding='rgb8'))
        return refs

    # --- ending episodes -----------------------------------------------------------------
    def _finish_episode(self, outcome: Outcome, reason: str = '') -> EpisodeSummary:
        summary = self._episodes.end(outcome)
        self._steps.stop()
        self._publish_event(EpisodeEvent.EPISODE_END, summary=summary, detail=reason)
        if outcome != Outcome.ABORT:
            self._results.append(summary)
            self._log_progress(summary)
            if summary.mode == Mode.EVAL and self._eval_left > 0:
                self._eval_left -= 1
            elif summary.mode == Mode.TRAIN:
                self._train_since_eval += 1
        if not self._more_episodes():
            self._report_and_exit()
        return summary

    def _log_progress(self, summary: EpisodeSummary) -> None:
        successes = sum(r.outcome == Outcome.SUCCESS for r in self._results)
        done = len(self._results)
        low, high = wilson_interval(successes, done)
        total = f'/{self.episodes_to_run}' if self.episodes_to_run else ''
        bar = ''
        if self.episodes_to_run:
            filled = int(20 * done / self.episodes_to_run)
            bar = '[' + '#' * filled + '.' * (20 - filled) + '] '
        self.get_logger().info(
            f'{bar}episode {done}{total} {summary.mode.name.lower()}: '
            f'{summary.outcome.name} in {summary.steps} steps | success {successes}/{done} = '
            f'{100 * successes / done:.0f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%) | '
            f'human {100 * summary.intervention_steps / max(summary.steps, 1):.0f}% of steps')

    def summary(self) -> dict:
        """Return the success rate with its interval, mean length and intervention rate."""
        done = len(self._results)
        successes = sum(r.outcome == Outcome.SUCCESS for r in self._results)
        steps = sum(r.steps for r in self._results)
        low, high = wilson_interval(successes, done)
        return {
            'robot_id': self.robot_id, 'episodes': done, 'successes': successes,
            'success_rate': successes / done if done else None,
            'success_rate_ci95': [low, high] if done else None,
            'mean_episode_steps': steps / done if done else None,
            'intervention_rate': (sum(r.intervention_steps for r in self._results) / steps
                                  if steps else None),
            'modes': sorted({r.mode.name.lower() for r in self._results}),
        }

    def _report_and_exit(self) -> None:
        summary = self.summary()
        low, high = summary['success_rate_ci95']
        self.get_logger().info(
            f'{summary["episodes"]} episodes ({", ".join(summary["modes"])}): success '
            f'{summary["successes"]}/{summary["episodes"]} = '
            f'{100 * summary["success_rate"]:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}%), '
            f'mean length {summary["mean_episode_steps"]:.1f} steps, intervention rate '
            f'{100 * (summary["intervention_rate"] or 0.0):.1f}% of steps')
        if self.summary_file:
            with open(self.summary_file, 'w') as stream:
                json.dump(summary, stream, indent=2)
        self.finished = True  # run_node ends the process

    def destroy_node(self):
        """Report the episodes so far when stopped before the planned number."""
        if self._results and not self.finished:
            summary = self.summary()
            self.get_logger().info(
                f'stopped after {summary["episodes"]} episodes: success '
                f'{summary["successes"]}/{summary["episodes"]} = '
                f'{100 * summary["success_rate"]:.1f}%, intervention rate '
                f'{100 * (summary["intervention_rate"] or 0.0):.1f}% of steps')
        return super().destroy_node()

    # --- services and other inputs -------------------------------------------------------
    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response):
        if self._estopped or self._learner_silent:
            response.success = False
            response.message = ('the e-stop is latched: release it first' if self._estopped
                                else 'the learner is silent: no episode until it is back')
            return response
        if self._episodes.running or self._reset_in_flight:
            response.success = False
            response.message = (f'episode {self._episodes.episode_id} is still running; end it '
                                'first' if self._episodes.running else 'a reset is under way')
            return response
        if request.instruction:
            self._instruction = request.instruction
        try:
            mode = Mode(request.mode.value)
            if self._reset_client is None:
                response.episode_id = self._open_episode(mode, 0)
            else:
                if request.seed >= 0:
                    self.seed, self._reset_count = request.seed, 0
                self._begin_episode(mode)
                response.episode_id = self._episodes.episode_id + 1
        except (EpisodeError, ValueError) as error:
            response.success, response.message = False, str(error)
            return response
        response.success = True
        return response

    def _on_end(self, request: EndEpisode.Request, response: EndEpisode.Response):
        try:
            outcome = Outcome(request.outcome.value)
            if outcome == Outcome.NONE:
                raise EpisodeError('an episode ends with SUCCESS, FAILURE, TIMEOUT or ABORT')
            if not self._episodes.running:
                raise EpisodeError('no episode is running')
        except (EpisodeError, ValueError) as error:
            response.success, response.message = False, str(error)
            return response
        response.success = True
        response.episode_id = self._episodes.episode_id
        response.steps = self._episodes.steps
        response.episode_return = self._episodes.episode_return
        self._finish_episode(outcome, request.reason)
        return response

    def _on_set_mode(self, request: SetMode.Request, response: SetMode.Response):
        try:
            mode = Mode(request.mode.value)
        except ValueError:
            response.success, response.message = False, f'unknown mode {request.mode.value}'
            return response
        if mode == Mode.PAUSE and self._episodes.running:
            self._finish_episode(Outcome.ABORT, 'paused')
        previous = self._episodes.set_mode(mode)
        response.success = True
        response.previous_mode.value = int(previous)
        self._mode.publish(ModeMsg(value=int(mode)))
        self._publish_event(EpisodeEvent.MODE_CHANGE, detail=f'{previous.name} -> {mode.name}')
        self.get_logger().info(f'mode {previous.name} -> {mode.name}')
        return response

    def _on_instruction(self, message: String) -> None:
        self._instruction = message.data

    def _on_refinement_command(self, message: String) -> None:
        self._refinement_command = message.data

    def _on_success_topic(self, message: Bool) -> None:
        self._success_signal = self._success_signal or message.data

    def _on_joy(self, message: Joy) -> None:
        buttons = list(message.buttons)
        if 0 <= self.success_button < len(buttons) and buttons[self.success_button]:
            self._success_signal = True

    def _publish_event(self, event: int, summary: EpisodeSummary = None, detail: str = '',
                       stamp_ns: int = 0):
        message = EpisodeEvent(robot_id=self.robot_id, event=event, detail=detail)
        message.header.stamp = (ns_to_stamp(stamp_ns) if stamp_ns > 0
                                else self.get_clock().now().to_msg())
        message.episode_id = self._episodes.episode_id
        message.mode.value = int(self._episodes.episode_mode if self._episodes.running
                                 else self._episodes.mode)
        message.steps = self._episodes.steps
        message.episode_return = self._episodes.episode_return
        message.intervention_steps = self._episodes.intervention_steps
        if summary is not None:
            message.mode.value = int(summary.mode)
            message.outcome = EpisodeOutcome(value=int(summary.outcome))
        if message.mode.value == Mode.EVAL and self._eval_left > 0:
            message.eval_round, message.eval_round_episodes = (self._eval_round,
                                                               self.eval_episodes)
        self._events.publish(message)


def main(args=None):
    """Run the episode manager until shutdown (or until its episodes are done)."""
    return run_node(EpisodeManagerNode, args)


if __name__ == '__main__':
    main()
