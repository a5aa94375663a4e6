# hilresrl: the commands of the README. Each target sets up what is missing first
# (scripts/setup.sh: virtual environment, ROS 2, pinned dependencies, colcon build).
.PHONY: setup lerobot train eval test clean

# Extra launch arguments, e.g. make train ARGS="namespace:=robot1"
ARGS ?=

setup:
	bash scripts/setup.sh

train: setup
	bash scripts/in-env.sh hilresrl launch train cell:=sim $(ARGS)

eval: setup
	bash scripts/in-env.sh hilresrl launch eval cell:=sim $(ARGS)

# The LeRobot environment (Python 3.12, LeRobot's own torch) beside the suite's, for the tests
# that run against LeRobot itself (test/test_lerobot_environment.py).
lerobot:
	bash scripts/setup-lerobot.sh --optional

test: setup lerobot
	bash scripts/in-env.sh python -m pytest $(ARGS)

clean:
	rm -rf build install log
